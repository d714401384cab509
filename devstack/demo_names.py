"""The names `dsrflow up` gives the processes it starts for the demo, in a module of their own:
the worker and the API read them (cli/environment_names.py) without importing the stack, whose
demo services' modules (FastAPI apps) took a fifth of a second of each one's start-up."""

from __future__ import annotations

# The shipped policy's e-mail-only processors (policy/connexeon.yaml): in the demo their mail lands
# in the sink too, and confirming means clicking the link in it. The demo e-mail marketing
# service's address goes to the children under DEMO_OPENDSR_URL.
DEMO_PROCESSOR_ADDRESSES = {
    "DSRFLOW_SURVEYS_PRIVACY_EMAIL": "privacy@surveys.example",
    "DSRFLOW_WORK_MANAGEMENT_PRIVACY_EMAIL": "privacy@work-management.example",
    "DSRFLOW_REGISTRATION_PRIVACY_EMAIL": "privacy@registration.example",
    "DSRFLOW_MONITORING_PRIVACY_EMAIL": "privacy@monitoring.example",
}
DEMO_OPENDSR_URL = "DSRFLOW_DEMO_OPENDSR_URL"
# Where the demo e-mail marketing service (devstack/demo/email_marketing.py) serves its OpenDSR API.
OPENDSR_BASE_PATH = "/opendsr"
