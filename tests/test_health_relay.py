"""`/healthz` reaches the mail relay as the worker's letters do (activities/mail.py
`relay_options`): with STARTTLS required and the login given. Before, its probe connected in
clear without them, so a relay that offered no STARTTLS read "ok" while every letter failed on
it and was retried."""

from __future__ import annotations

from aiosmtpd.controller import Controller

from devstack.processes import free_port
from tests.support import api_client, staff_headers


class _Accepting:
    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        return "250 OK"


async def test_a_relay_without_the_starttls_letters_need_is_reported_down(settings, pool, dev_server, task_queue):
    relay = Controller(_Accepting(), hostname="127.0.0.1", port=free_port())  # offers no STARTTLS
    relay.start()
    try:
        for starttls, status, smtp in ((True, 503, "STARTTLS"), (False, 200, "ok")):
            reaching = settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": relay.port,
                                                   "smtp_starttls": starttls})
            async with api_client(reaching, dev_server.client, task_queue) as http:
                r = await http.get("/healthz", headers=await staff_headers(pool, "admin"))
            assert r.status_code == status, r.text
            assert smtp in r.json()["components"]["smtp"], r.text
    finally:
        relay.stop()
