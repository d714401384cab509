"""Search attributes of request workflows. They are stored unencrypted: never personal data."""

from temporalio.common import SearchAttributeKey

STATUS = SearchAttributeKey.for_keyword("DsrStatus")
REQUEST_TYPE = SearchAttributeKey.for_keyword("DsrType")
REGIME = SearchAttributeKey.for_keyword("DsrRegime")
DUE_DATE = SearchAttributeKey.for_datetime("DsrDueDate")

SEARCH_ATTRIBUTES = (STATUS, REQUEST_TYPE, REGIME, DUE_DATE)
