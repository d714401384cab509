"""Rate limits on what anyone may call without signing in: submitting a request and verifying it
(through the portal or the public API), the console's sign-in, wrong bearer tokens, processor
callbacks and health.

Fixed windows counted in Postgres (`rate_limit_counters`), so that every API process shares the
count: an attacker cannot multiply the limit by landing on another process. Buckets are keyed
hashes, so the table holds no address and no IP. A refused call is a `Problem` 429 with
`retry_after`: the API answers it as problem+json with a `Retry-After` header, the portal as a page.

What is counted is chosen so that nobody can spend someone else's allowance:
- a client is an IPv4 address or an IPv6 /64 (one subscriber gets a whole /64 to pick from);
  an IPv6 client's /48 is counted too, at `DSRFLOW_RATE_IPV6_48_MULTIPLE` times each per-client
  limit: a subscriber delegated a /56 or a /48 holds 256 or 65,536 /64s, and would otherwise
  multiply every limit by as many, while a carrier's subscribers sharing a /48 keep room;
- verification attempts count per client, and per request's latest code *and* client, never per
  e-mail address: a stranger's wrong codes use up the stranger's attempts, not the subject's
  (api/public/attempts.py: a new code is counted apart, a link we sent not at all);
- the per-address allowance of submissions is spent only when a request is verified, so
  unverified requests in someone's name cannot block them from asking;
- verification e-mails that anyone may cause (a public submission, the portal's "Send me a new
  code") are counted per address, from every client (`mail`): a sender rotating clients cannot
  flood someone's mailbox. Past it the submission is refused before anything is stored, with the
  words of every other limit; a verified request gives its e-mail back. A stranger who spends it
  keeps the subject from asking anew for a day, not from confirming: the e-mail's link works.
- unverified requests count against the client's network (an IPv4 /24, an IPv6 /48) too, a
  share of the global ceiling of them (`take_share`): one network rotating its addresses cannot
  fill the ceiling and keep everyone else out for the verification window.
An address is counted as the mailbox it reaches (dsrflow/domain/mailboxes.py `mailbox_of`: "+tag" and
Gmail's dots folded).

The client is what the server sees (`request.client`); behind a reverse proxy, set
`FORWARDED_ALLOW_IPS=<the proxy's address>` for `dsrflow api` (uvicorn reads it) so that it is the
subject's, not the proxy's (docs/rate-limits.md).
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass
from datetime import datetime

from babel.units import format_unit
from fastapi import Request

from api.problems import Problem
from api.state import AppState
from dsrflow.crypto.hashing import keyed_hash
from dsrflow.crypto.keys import load_secret_key
from dsrflow.domain.mailboxes import mailbox_of
from dsrflow.infra.metrics import rate_limited

# One statement per hit: a window that has ended restarts at 1; otherwise the count goes up.
_COUNT_ONE = """
INSERT INTO rate_limit_counters AS c (bucket, hits, window_end)
VALUES ($1, 1, now() + make_interval(secs => $2))
ON CONFLICT (bucket) DO UPDATE SET
    hits = CASE WHEN c.window_end <= now() THEN 1 ELSE c.hits + 1 END,
    window_end = CASE WHEN c.window_end <= now() THEN excluded.window_end ELSE c.window_end END
"""
_HIT = _COUNT_ONE + "RETURNING hits, greatest(ceil(extract(epoch FROM c.window_end - now())), 1)::int AS retry_after"
# The same primary-key lookup whether or not the bucket exists, so its timing says nothing about
# whether an address has requests.
_PEEK = """
SELECT coalesce(max(hits), 0) AS hits,
       coalesce(max(greatest(ceil(extract(epoch FROM window_end - now())), 1)::int), 1) AS retry_after
FROM rate_limit_counters WHERE bucket = $1 AND window_end > now()
"""
# A refused take's window: the seconds left, and its end as stored (the window's one identity).
_WINDOW = """
SELECT coalesce(max(greatest(ceil(extract(epoch FROM window_end - now())), 1)::int), 1) AS retry_after,
       max(window_end) AS window_end
FROM rate_limit_counters WHERE bucket = $1 AND window_end > now()
"""
# One of an allowance taken, in one statement, only while some is left (no row: none is): a peek
# and a later hit let attempts fired together all pass the peek before any was counted.
_TAKE = _COUNT_ONE + "WHERE c.window_end <= now() OR c.hits < $3 RETURNING hits"
_GIVE_BACK = "UPDATE rate_limit_counters SET hits = greatest(hits - 1, 0) WHERE bucket = $1 AND window_end > now()"
_UNVERIFIED_OPEN = "SELECT count(*) FROM dsr_requests WHERE status = 'awaiting_verification'"
# A network's share of the unverified requests (`take_share`): one taken while some is left, saying
# until when it counts; a request's receipt of it lasts as long, and is used once.
_TAKE_SHARE = _COUNT_ONE + "WHERE c.window_end <= now() OR c.hits < $3 RETURNING window_end"
_RECEIPT = "INSERT INTO rate_limit_counters (bucket, hits, window_end) VALUES ($1, 1, $2) ON CONFLICT (bucket) DO NOTHING"
_USE_RECEIPT = "DELETE FROM rate_limit_counters WHERE bucket = $1 AND window_end > now() RETURNING 1"
# Seconds a client is asked to wait when the ceiling of unverified requests is reached.
CEILING_RETRY_AFTER = 300
# Ended windows are deleted now and then, not on every hit.
_SWEEP_EVERY = 600.0
# Clients (and /48s) a process keeps as having sent a wrong bearer token: a spray from many
# addresses (an IPv6 /32 holds billions of /64s) grew the map without end. Past it, the process
# reads every bearer caller's count until the newest of them would have been forgotten.
SUSPECTS_KEPT = 10_000


def clients_of(request: Request) -> tuple[str, str | None]:
    """The client a limit counts: the IPv4 address (also the one an IPv4-mapped, 6to4 or Teredo
    address carries), or the /64 network of an IPv6 address; and an IPv6 client's /48 (None for
    any other)."""
    host = request.client.host if request.client else "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host, None
    if isinstance(address, ipaddress.IPv4Address):
        return str(address), None
    # 6to4 (2002:<IPv4>::/48) and Teredo addresses carry the IPv4 address that owns them: one
    # IPv4 host holds 65,536 /64s of 6to4, and Teredo addresses at will.
    carried = address.ipv4_mapped or address.sixtofour or (address.teredo[1] if address.teredo else None)
    if carried is not None:
        return str(carried), None
    return _network(address, 64), _network(address, 48)


def network_of(request: Request) -> str:
    """The network a share of the unverified requests counts (`RateLimiter.take_share`): an IPv4
    client's /24 (also the one a 6to4 or Teredo address carries), an IPv6 client's /48: what one
    hosting customer or one subscriber can rotate through."""
    client, delegation = clients_of(request)
    if delegation is not None:
        return delegation
    try:
        return str(ipaddress.IPv4Network((client, 24), strict=False))
    except ValueError:
        return client


def _network(address: ipaddress.IPv6Address, prefix: int) -> str:
    return str(ipaddress.IPv6Network((address, prefix), strict=False))


# A wait is said in the largest of these units it holds twice, else in seconds.
_WAIT_UNITS = (("day", 86400), ("hour", 3600), ("minute", 60))


def wait_words(seconds: int, language: str = "en") -> str:
    """A wait as people count it, in `language` (Babel's unit words): "90 seconds", "5 minutes",
    "24 hours", "7 days"; rounded up, as a wait said too short is refused again. A day's limit
    read "try again in 86400 second(s)", on the portal too; `Retry-After` stays in seconds, for
    programs."""
    seconds = max(seconds, 1)
    unit, size = next(((unit, size) for unit, size in _WAIT_UNITS if seconds >= 2 * size), ("second", 1))
    return format_unit(-(-seconds // size), f"duration-{unit}", locale=language)


def _too_many(retry_after: int) -> Problem:
    # The same words whichever limit it is: a refusal must not tell a stranger which bucket (and
    # so whether someone else has been using this address) ran out.
    return Problem(429, "Too many requests", f"too many attempts; try again in {wait_words(retry_after)}",
                   retry_after=retry_after)


@dataclass(frozen=True)
class Share:
    """One of a network's share of unverified requests, taken until `until` (in memory only)."""

    network: str
    until: datetime


class RateLimiter:
    """One per app (api/deps.py `Limiter`), counting in the database of the app's `state`."""

    def __init__(self, state: AppState) -> None:
        self._state = state
        self._last_sweep = 0.0
        # Clients and /48s this process has seen send a wrong bearer token, until when their count
        # matters (at most SUSPECTS_KEPT); and until when every caller's is read, after more.
        self._suspects: dict[tuple[str, ...], float] = {}
        self._suspect_everyone_until = 0.0

    async def hit(self, request: Request, action: str, *, request_id: str | None = None) -> None:
        """Count one `action` from this client (and its /48, for an IPv6 client), and for this
        client on `request_id` if given; raise a 429 Problem when any is over its limit. The
        client is counted first: a client over its limit uses up neither its /48's allowance
        (which its neighbours share) nor its allowance on the request. The request's bucket has
        no /48: the code's own attempts (the policy's `verification.max_attempts`) bound it."""
        pool = await self._state.db()
        for per, counted, values, multiple in self._client_buckets(request):
            await self._count(pool, action, per, counted, values, multiple)
        if request_id is not None:
            await self.hit_request(request, action, request_id)
        await self._sweep(pool)

    async def hit_request(self, request: Request, action: str, request_id: str, *apart: str) -> tuple[int, int]:
        """Count one `action` from this client on `request_id` alone (the client itself counted
        already, by `hit`), each of `apart` counted apart (a verification's code: one per code
        sent); 429 over the limit. Returns how many more the client may make within the window,
        and the seconds until it ends, for the page to say."""
        pool = await self._state.db()
        return await self._count(pool, action, "request", "request", (request_id, clients_of(request)[0], *apart), 1)

    async def _count(self, pool, action: str, per: str, counted: str, values: tuple[str, ...],
                     multiple: int) -> tuple[int, int]:
        allowed, window = self._state.settings.rate(action, per)
        hits, retry_after = await pool.fetchrow(_HIT, self._bucket(action, counted, *values), float(window))
        if hits > allowed * multiple:
            rate_limited(action, counted)
            raise _too_many(retry_after)
        return allowed * multiple - hits, retry_after

    async def count_wrong_token(self, request: Request) -> None:
        """Count a bearer token that named no staff member (429 past the client's allowance of
        them): unlike the console's sign-in, a right token is never counted, since a script may
        call thousands of times an hour. The client's /48 is suspected too: a guesser moving to
        another /64 of it once its /48's allowance is spent is refused before its guess is tried."""
        now = time.monotonic()
        until = now + self._state.settings.rate("badtoken", "ip")[1]
        for _, counted, values, _ in self._client_buckets(request):
            self._suspect((counted, *values), now, until)
        await self.hit(request, "badtoken")

    def _suspect(self, key: tuple[str, ...], now: float, until: float) -> None:
        if key not in self._suspects and len(self._suspects) >= SUSPECTS_KEPT:
            self._suspects = {kept: ends for kept, ends in self._suspects.items() if ends > now}
            if len(self._suspects) >= SUSPECTS_KEPT:
                # Forgetting one would let it guess again unchecked: read everyone's count instead.
                self._suspect_everyone_until = until
                self._suspects.clear()
        self._suspects[key] = until

    async def refuse_token_guesser(self, request: Request) -> None:
        """429, before any token is looked up, for a client (or a client of a /48) that has sent
        too many wrong ones, so that past its allowance a guess is not even tried. The count is
        read only for a client this process has seen send a wrong token within the window, itself
        or from its /48 (any process counts them, in the database): a caller whose tokens are
        right costs no statement, unless more clients sent wrong ones than the process keeps."""
        now = time.monotonic()
        buckets = self._client_buckets(request)
        suspected = now < self._suspect_everyone_until
        for _, counted, values, _ in buckets:
            key = (counted, *values)
            until = self._suspects.get(key)
            if until is not None and until < now:
                del self._suspects[key]
            elif until is not None:
                suspected = True
        if not suspected:
            return
        pool = await self._state.db()
        for per, counted, values, multiple in buckets:
            allowed, _ = self._state.settings.rate("badtoken", per)
            hits, retry_after = await pool.fetchrow(_PEEK, self._bucket("badtoken", counted, *values))
            if hits >= allowed * multiple:
                rate_limited("badtoken", counted)
                raise _too_many(retry_after)

    def _client_buckets(self, request: Request) -> list[tuple[str, str, tuple[str, ...], int]]:
        """The client's bucket and, for an IPv6 client, its /48's: (the setting's `per`, what the
        bucket counts, its values, the multiple of the setting)."""
        client, delegation = clients_of(request)
        buckets: list[tuple[str, str, tuple[str, ...], int]] = [("ip", "ip", (client,), 1)]
        if delegation is not None:
            buckets.append(("ip", "ipv6_48", (delegation,), self._state.settings.rate_ipv6_48_multiple))
        return buckets

    async def check_allowance(self, action: str, *, email: str) -> None:
        """429 if `email` has used up its allowance of `action`; spends nothing (`spend` does)."""
        allowed, _ = self._state.settings.rate(action, "email")
        pool = await self._state.db()
        hits, retry_after = await pool.fetchrow(_PEEK, self._bucket(action, "email", mailbox_of(email)))
        if hits >= allowed:
            rate_limited(action, "email")
            raise _too_many(retry_after)

    async def spend(self, action: str, *, email: str) -> None:
        """Spend one of `email`'s allowance of `action` (a request it has verified)."""
        _, window = self._state.settings.rate(action, "email")
        pool = await self._state.db()
        await pool.fetchrow(_HIT, self._bucket(action, "email", mailbox_of(email)), float(window))

    async def take(self, action: str, *, email: str) -> None:
        """Take one of `email`'s allowance of `action` for an attempt about to be made (429, nothing
        taken, when none is left); `give_back` returns it if the attempt does not count after all.
        Checked first and spent after (`check_allowance`, `spend`), guesses fired together at
        several requests of one address all passed the check before the first was spent: as many
        compared as the attacker had in flight, not the allowance."""
        refused = await self._take(action, "email", mailbox_of(email))
        if refused is not None:
            raise _too_many(refused[0])

    async def give_back(self, action: str, *, email: str) -> None:
        """Return one `take` took, within its window."""
        await self._give_back(action, "email", mailbox_of(email))

    async def take_for_token(self, action: str, token_id: str) -> tuple[int, datetime | None] | None:
        """Take one of a staff token's allowance of `action` (api/staff_opens.py), as `take` does;
        None when taken, else (nothing taken) the seconds until the window ends and its end, the
        same instant for every refusal within the window (None if it ended meanwhile)."""
        return await self._take(action, "token", token_id)

    async def give_back_for_token(self, action: str, token_id: str) -> None:
        """Return one `take_for_token` took, within its window."""
        await self._give_back(action, "token", token_id)

    async def _take(self, action: str, per: str, key: str) -> tuple[int, datetime | None] | None:
        """One of `key`'s allowance of `action` taken in one statement (none left: nothing taken,
        and the seconds until its window ends, and its end)."""
        allowed, window = self._state.settings.rate(action, per)
        pool = await self._state.db()
        bucket = self._bucket(action, per, key)
        if await pool.fetchval(_TAKE, bucket, float(window), allowed) is not None:
            return None
        rate_limited(action, per)
        retry_after, window_end = await pool.fetchrow(_WINDOW, bucket)
        return int(retry_after), window_end

    async def _give_back(self, action: str, per: str, key: str) -> None:
        pool = await self._state.db()
        await pool.execute(_GIVE_BACK, self._bucket(action, per, key))

    async def check_unverified_ceiling(self) -> None:
        """503 while as many unverified requests are open as the service takes at once."""
        pool = await self._state.db()
        if await pool.fetchval(_UNVERIFIED_OPEN) >= self._state.settings.max_unverified_open:
            rate_limited("submit", "unverified_ceiling")
            raise Problem(503, "Too many requests waiting",
                          "we are receiving more requests than usual; please try again in a few minutes",
                          retry_after=CEILING_RETRY_AFTER)

    async def take_share(self, request: Request) -> Share:
        """Take one of the client's network's share of unverified requests (429, nothing taken,
        when it holds `max_unverified_per_network` already): the global ceiling alone let one
        network rotating its addresses fill it, and every other subject got 503 for the
        verification window. Counted over a window as long as the policy's verification window,
        the longest an unverified request stays open; `give_back_share` returns it for a
        submission that opened nothing, `keep_receipt` lets the request's confirmation return it."""
        network = network_of(request)
        window = self._state.policy.policy.verification.expires_after_days * 86400
        pool = await self._state.db()
        bucket = self._bucket("unverified", "network", network)
        until = await pool.fetchval(_TAKE_SHARE, bucket, float(window), self._state.settings.max_unverified_per_network)
        if until is None:
            _, retry_after = await pool.fetchrow(_PEEK, bucket)
            rate_limited("submit", "network")
            raise Problem(429, "Too many requests",
                          f"too many unconfirmed requests from your network; try again in {wait_words(retry_after)}",
                          retry_after=retry_after, limit="network")
        return Share(network, until)

    async def give_back_share(self, share: Share) -> None:
        await self._return_share(share.network)

    async def _return_share(self, network: str) -> None:
        pool = await self._state.db()
        await pool.execute(_GIVE_BACK, self._bucket("unverified", "network", network))

    async def keep_receipt(self, share: Share, request_id: str) -> None:
        """Note that `request_id` holds one of `share`, for as long as its window counts it (a
        keyed hash of the request and the network: no address is kept)."""
        pool = await self._state.db()
        await pool.execute(_RECEIPT, self._bucket("unverified", "receipt", request_id, share.network), share.until)

    async def confirmed(self, request: Request, request_id: str) -> None:
        """A request confirmed from the network that opened it gives its share back (once): a
        subject who confirms at once, from the same place, holds none of it. Confirmed from
        another network, its share is held until its window ends: where it came from is not kept."""
        network = network_of(request)
        pool = await self._state.db()
        if await pool.fetchval(_USE_RECEIPT, self._bucket("unverified", "receipt", request_id, network)):
            await self._return_share(network)

    def _bucket(self, action: str, per: str, *values: str) -> str:
        return keyed_hash(load_secret_key(self._state.settings), "rate-limit", action, per, *values)

    async def _sweep(self, pool) -> None:
        if time.monotonic() - self._last_sweep > _SWEEP_EVERY:
            self._last_sweep = time.monotonic()
            await pool.execute("DELETE FROM rate_limit_counters WHERE window_end < now()")
