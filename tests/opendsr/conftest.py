"""The OpenDSR tests' fixtures (defined in support.py beside the helpers they use)."""

from tests.opendsr.support import identity, processor, processor_db, receiver  # noqa: F401
