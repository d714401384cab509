-- An audit append in one statement (dsrflow/domain/audit.py `append_event`): the chain's head
-- locked, an event already appended under the key returned as it is, the event written with its
-- position and hash, and the head moved on. The hash is sha256(previous hash || canonical JSON of
-- the event), the canonical JSON coming from the caller as the text before and after the event's
-- position, which only the head knows; audit_verify.py recomputes every hash in Python.
CREATE FUNCTION audit_append(p_key text, p_request uuid, p_type text, p_actor text, p_data jsonb,
                             p_at timestamptz, p_chain text, p_before text, p_after text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    head audit_chain_heads%ROWTYPE;
    earlier text;
    digest text;
BEGIN
    SELECT * INTO head FROM audit_chain_heads WHERE chain_id = p_chain FOR UPDATE;
    IF NOT FOUND THEN  -- the chain's first event creates its head, which is then its lock
        INSERT INTO audit_chain_heads (chain_id, last_pos, last_hash) VALUES (p_chain, 0, repeat('0', 64))
            ON CONFLICT DO NOTHING;
        SELECT * INTO head FROM audit_chain_heads WHERE chain_id = p_chain FOR UPDATE;
    END IF;
    SELECT hash INTO earlier FROM audit_events WHERE event_key = p_key;
    IF earlier IS NOT NULL THEN  -- a retried step
        RETURN earlier;
    END IF;
    digest := encode(sha256(convert_to(head.last_hash || p_before || (head.last_pos + 1)::text || p_after, 'UTF8')),
                     'hex');
    INSERT INTO audit_events (event_key, request_id, event_type, actor, data, occurred_at, chain_id, chain_pos,
                              prev_hash, hash)
    VALUES (p_key, p_request, p_type, p_actor, p_data, p_at, p_chain, head.last_pos + 1, head.last_hash, digest)
    ON CONFLICT (event_key) DO NOTHING;
    IF NOT FOUND THEN  -- the same key appended meanwhile to another chain: the first one stands
        RETURN (SELECT hash FROM audit_events WHERE event_key = p_key);
    END IF;
    UPDATE audit_chain_heads SET last_pos = head.last_pos + 1, last_hash = digest WHERE chain_id = p_chain;
    RETURN digest;
END
$$;
