-- An erasure withdrawn (or cancelled, denied) after a system had kept records under a legal-claims
-- hold left their deferred erasure due: when compliance released the hold, the sweep erased them
-- (or asked the processor to), though the subject no longer asked for it. Now the close calls such
-- erasures off (dsrflow/stores/deferred_store.py `call_off_deferred`): the rows stay, as evidence
-- of what the request kept, with when it was called off; the sweep leaves them.
ALTER TABLE deferred_erasures ADD COLUMN called_off_at timestamptz;
