"""A newer restriction of a subject at a system where a person is still to carry out an older lift
of the subject there tells that person at once (activities/lift_superseded.py): staff alerted to lift
by hand get an alert not to, once; a processor asked by e-mail to end a restriction reads in the
newer restriction's e-mail that it supersedes that lift, and every lift e-mail names the restriction
it ends. Before, a person acting on the older lift undid the newer restriction and nothing told them
not to. The fan-out's activities are called as the workflow's tasks call them
(tests/test_restriction_lift_races.py), the held lift's release as the sweep calls it.
"""

from __future__ import annotations

import html

import activities.held_lifts as held_lifts
import activities.lift_superseded as lift_superseded
from activities.fanout import FanoutActivities
from activities.held_lifts import release_held_lifts
from activities.lift_superseded import tell_untold
from dsrflow.domain.references import short_reference
from tests.fanout_stack import api, fanout_stack_alone
from tests.process_support import activity_killed_at
from tests.support import console_sign_in, letters_for, text_of
from tests.test_held_lift_release import ENDINGS, _held
from tests.test_restriction_lift_races import _restriction, _task
from workers.dsr_worker import activity_context


async def _refused(ctx, job):
    raise ConnectionRefusedError("the relay is away")


ALERTS = "SELECT letter_key, body_text FROM sent_letters WHERE request_id = $1::uuid AND purpose = 'staff_alert'"
SUPERSEDED = ("SELECT data FROM audit_events WHERE request_id = $1::uuid "
              "AND event_type = 'restriction.lift_superseded'")


async def test_staff_told_to_lift_by_hand_are_told_not_to_once_a_newer_restriction_restricts_there(
        postgres, settings, dev_server, tmp_path, monkeypatch):
    """The first restriction's lift of the e-mail marketing processor is handed to staff (its holder
    ended without restricting it there). A third restriction of the subject then restricts there:
    staff are alerted once not to lift it, naming the lift's request and the time from which the
    third restricts; its timeline says so. The relay away as its task tries, the task stands and
    the start sweep's part tells them; its task's try killed between the alert and that record
    (failpoint lift-superseded-alerted), the sweep's part records it and alerts nobody again; a
    fourth restriction does not alert about the same lift."""
    async with fanout_stack_alone(postgres, settings, dev_server.client, tmp_path, "liftsup") as (stack, pool), \
            api(stack) as http:
        fanout = FanoutActivities(activity_context(stack.settings, pool))
        first, second = await _held(fanout, pool, stack.settings, also=("email_marketing",))
        await pool.execute(ENDINGS["cancelled"], second)
        assert await release_held_lifts(fanout.ctx) == 2  # analytics lifted, email_marketing to staff
        third = await _restriction(pool, stack.settings, "third")
        task = await _task(fanout, third, "restrict", system="email_marketing")
        # The relay away as its task tells staff: the task stands (its restriction done), nothing told.
        with monkeypatch.context() as relay_away:
            relay_away.setattr(lift_superseded, "sweep_alert", _refused)
            assert (await fanout._run(task)).status == "needs_attention"  # OpenDSR: staff restrict
        assert await pool.fetch(ALERTS, third) == [] and await pool.fetch(SUPERSEDED, third) == []
        # Its task's try killed once the alert went, before the timeline's record: the start sweep's
        # part records it and sends nothing again; the task's next try neither.
        await activity_killed_at(stack.settings, f"lift-superseded-alerted~email_marketing:{third}",
                                 "activities.fanout:FanoutActivities.run_system_action", task)
        assert len(await pool.fetch(ALERTS, third)) == 1 and await pool.fetch(SUPERSEDED, third) == []
        assert await tell_untold(fanout.ctx) == 1
        assert await tell_untold(fanout.ctx) == 0
        await fanout._run(task)
        (alert,) = await pool.fetch(ALERTS, third)
        assert alert["letter_key"].endswith("lift-superseded:email_marketing"), alert
        words = " ".join(alert["body_text"].split())
        assert (f"Do not lift the restriction in our e-mail marketing system that staff were asked to lift "
                f"by hand for the subject's request {short_reference(first)}: this request restricts the "
                "subject's data there since ") in words, words
        assert "If anyone lifted it there after that, restrict it there again" in words
        (event,) = await pool.fetch(SUPERSEDED, third)
        assert (event["data"]["staff"], event["data"]["emailed"]) == ([first], []), event
        await console_sign_in(http, pool, "compliance")
        page = " ".join(html.unescape((await http.get(f"/console/requests/{third}")).text).split())
        assert f"staff alerted not to lift it for {short_reference(first)}" in page
        fourth = await _restriction(pool, stack.settings, "fourth")
        await fanout._run(await _task(fanout, fourth, "restrict", system="email_marketing"))
        assert await pool.fetch(ALERTS, fourth) == [] and await pool.fetch(SUPERSEDED, fourth) == []


async def test_a_restriction_e_mail_supersedes_an_unconfirmed_lift_e_mail_to_the_same_processor(
        postgres, settings, dev_server, tmp_path, mail_sink, monkeypatch):
    """The surveys processor (asked by e-mail) was asked to restrict, then to lift, the first
    restriction, and has not confirmed the lift; the second restriction's e-mail to it says it
    supersedes that lift e-mail (its reference), and the lift e-mail named the restriction it ends
    and that another stands. No staff alert: the processor is the one told."""
    monkeypatch.setenv("DSRFLOW_SURVEYS_PRIVACY_EMAIL", "privacy@surveys.example")
    async with fanout_stack_alone(postgres, settings, dev_server.client, tmp_path, "liftsupmail",
                                  keep_manual=("surveys",)) as (stack, pool):
        fanout = FanoutActivities(activity_context(stack.settings, pool))
        first = await _restriction(pool, stack.settings, "first")
        for action in ("restrict", "lift_restriction"):
            lift_task = await _task(fanout, first, action, system="surveys")
            lift = await fanout._run(lift_task)  # the restriction's e-mail, then its lift's
            assert lift.status == "pending"
        second = await _restriction(pool, stack.settings, "second")
        restrict = await _task(fanout, second, "restrict", system="surveys")
        restriction = await fanout._run(restrict)
        assert restriction.status == "pending"

        lift_mail = [text_of(m) for m in letters_for(mail_sink, first, "processor_request")
                     if "end of a restriction" in str(m["Subject"])]
        (lift_text,) = [" ".join(text.split()) for text in lift_mail]
        assert "This ends the restriction we asked of you on " in lift_text, lift_text
        assert f"under our request reference {short_reference(first)}." in lift_text
        assert "under another reference, or ask of you after this e-mail, stands: keep it." in lift_text
        (restrict_mail,) = letters_for(mail_sink, second, "processor_request")
        words = " ".join(text_of(restrict_mail).split())
        assert ("This restriction supersedes our e-mail of " in words
                and f"under our request reference {short_reference(first)}, which told you that a restriction "
                "of this person's data had ended: do not act on that e-mail." in words), words
        asked = await pool.fetchval("SELECT data FROM audit_events WHERE request_id = $1::uuid "
                                    "AND event_type = 'processor.asked'", second)
        assert asked["supersedes"] == [first], asked
        (event,) = await pool.fetch(SUPERSEDED, second)
        assert (event["data"]["staff"], event["data"]["emailed"]) == ([], [first]), event
        assert await pool.fetch(ALERTS, second) == []

        # The reminders (what a processor acting late reads) say it again: reminder_days (3) passed.
        await pool.execute("UPDATE manual_tasks SET sent_at = sent_at - interval '4 days' WHERE system = 'surveys' "
                           "AND request_id = ANY($1::uuid[])", [first, second])
        for task, result in ((restrict, restriction), (lift_task, lift)):
            polled = await fanout.poll_system_action(task.model_copy(update={"external_id": result.external_id}))
            assert polled.status == "pending" and "reminded" in (polled.message or ""), polled
        (reminder,) = letters_for(mail_sink, second, "processor_reminder")
        words = " ".join(text_of(reminder).split())
        assert ("This is reminder 1" in words and "This restriction supersedes our e-mail of " in words
                and f"under our request reference {short_reference(first)}, which told you" in words), words
        (lift_reminder,) = letters_for(mail_sink, first, "processor_reminder")
        lift_words = " ".join(text_of(lift_reminder).split())
        assert ("This ends the restriction we asked of you on " in lift_words
                and f"under our request reference {short_reference(first)}." in lift_words
                and "stands: keep it." in lift_words), lift_words


async def test_a_restriction_whose_task_ran_before_a_held_lift_was_handed_to_staff_still_tells_them(
        postgres, settings, dev_server, tmp_path, monkeypatch):
    """The race the lock leaves: the held lift's release checks under the lock and alerts staff
    after it; a third restriction planned and run at the processor in between sees no release on
    record. The release, once on record, asks again and finds it: staff are alerted not to lift."""
    async with fanout_stack_alone(postgres, settings, dev_server.client, tmp_path, "liftsuprace") as (stack, pool):
        fanout = FanoutActivities(activity_context(stack.settings, pool))
        first, second = await _held(fanout, pool, stack.settings, also=("email_marketing",))
        await pool.execute(ENDINGS["cancelled"], second)
        third: list[str] = []
        alert = held_lifts.sweep_alert

        async def restricted_meanwhile(ctx, job):
            third.append(await _restriction(pool, stack.settings, "third"))
            await fanout._run(await _task(fanout, third[0], "restrict", system="email_marketing"))
            assert await pool.fetch(SUPERSEDED, third[0]) == []  # nothing on record to see yet
            return await alert(ctx, job)

        monkeypatch.setattr(held_lifts, "sweep_alert", restricted_meanwhile)
        assert await release_held_lifts(fanout.ctx) == 2
        (event,) = await pool.fetch(SUPERSEDED, third[0])
        assert event["data"]["staff"] == [first], event
        (alert_sent,) = await pool.fetch(ALERTS, third[0])
        assert alert_sent["letter_key"].endswith("lift-superseded:email_marketing"), alert_sent
