"""Alerts reach people once: every event kind arrives at a real SMTP server and a webhook
receiver with its numbers and links; the same event again (a retried run, a repeated sensor
tick: the same key) sends nothing and records nothing new; a destination that is down or not
configured is recorded as such and never fails the decision; URLs stay out of the trail."""

from __future__ import annotations

import time

import pytest

from lakeloop import governance
from lakeloop.governance import events, notices
from lakeloop.settings import BUILTIN_USE_CASES
from lakeloop.usecase import UseCaseError, parse_use_case
from tests.support.receivers import HOOK_ENV, MAIL_ENV, routed

RUN = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
RUN_URL = f"http://127.0.0.1:3000/runs/{RUN}"
MODEL_URL = "http://127.0.0.1:5000/#/models/credit_risk/versions/7"
REPORT_URL = "http://127.0.0.1:8765/credit_risk/monitoring/drift_report/ds=2026-10-15/x.html"


def one_of_each(uc: str) -> dict[str, events.Event]:
    """An event of every kind, as the platform raises them."""
    return {e.kind: e for e in [
        notices.gate(uc, "7", "performance_gate", True, "recall 0.91 >= 0.8", run_id=RUN,
                     run_url=RUN_URL, model_url=MODEL_URL),
        notices.gate(uc, "7", "fairness_gate", False, "gender approval-rate ratio 0.71 < 0.8",
                     run_id=RUN, run_url=RUN_URL, model_url=MODEL_URL),
        notices.contract_error(uc, "silver_applications", "2026-10-15..2026-10-15",
                               "quarantine_rate", "31.0% of rows quarantined > 5.0%",
                               run_id=RUN, run_url=RUN_URL),
        notices.report(events.DRIFT, uc, "2026-10-15", "4 of 9 features drifted",
                       {"drifted_features": 4}, model_version="7", report_url=REPORT_URL,
                       run_id=RUN, run_url=RUN_URL),
        notices.report(events.PERFORMANCE, uc, "2026-10-15/measured", "recall 0.61 < 0.80",
                       {"recall": 0.61}, model_version="7", report_url=REPORT_URL,
                       run_id=RUN, run_url=RUN_URL),
        notices.report(events.FAIRNESS, uc, "2026-10-15", "approval-rate ratio 0.52",
                       {"gender_approval_ratio": 0.52}, model_version="7",
                       report_url=REPORT_URL, run_id=RUN, run_url=RUN_URL),
        notices.approval_waiting(uc, "7", 2, ("Ada", "Grace"), model_url=MODEL_URL,
                                 launchpad_url="http://127.0.0.1:3000/locations/lakeloop/jobs/"
                                 "credit_risk_approval/playground", run_id=RUN,
                                 run_url=RUN_URL),
        notices.decision(uc, "7", "approved", "Ada", "2026-10-16T09:00:00+00:00",
                         "card reviewed", "pending", model_url=MODEL_URL),
        notices.decision(uc, "8", "rejected", "Grace", "2026-10-17T09:00:00+00:00",
                         "TPR gap", "rejected", model_url=MODEL_URL),
        notices.promoted(uc, "7", "6", "promoted after validation and canary",
                         model_url=MODEL_URL, endpoint="http://127.0.0.1:9100/api/v1.0/"
                         "predictions", run_id=RUN, run_url=RUN_URL),
        notices.rolled_back(uc, "9", "7", ["p99 410 ms over 250 ms"],
                            {"latency_p99_ms": "410 (limit 250, failed)"},
                            model_url=MODEL_URL, run_id=RUN, run_url=RUN_URL),
        notices.rollback(uc, "6", "7", "Ada", "recall fell", "2026-10-18T10:00:00+00:00",
                         model_url=MODEL_URL),
        notices.retraining(uc, "credit_risk-drift-2026-10-15", "drift",
                           "2026-10-15: 4 of 9 features drifted"),
        notices.run_failed(uc, RUN, "credit_risk_retrain", "Spark died", run_url=RUN_URL,
                           steps=["credit_risk__training__candidate_model"]),
    ]}


def test_every_kind_of_event_arrives_once_by_email_and_webhook_with_its_links(alerting):
    raised = one_of_each(alerting.use_case.name)
    assert set(raised) == set(events.KINDS), "a kind without a builder, or a test without it"
    for event in raised.values():
        done = governance.record(alerting.lakehouse, alerting.use_case, event,
                                 environ=alerting.environ)
        assert not done.duplicate
        assert [d.delivered for d in done.deliveries] == [True, True], done.describe()
    mails, hooks = alerting.smtp.texts(), alerting.webhook.bodies
    assert len(mails) == len(hooks) == len(events.KINDS)
    for kind, event in raised.items():
        [mail] = [m for m in mails if event.identity in m]
        [hook] = [h for h in hooks if event.identity in h["message"]]
        assert hook["title"] == event.title() and kind.replace("_", " ") in hook["title"]
        for url in event.links.values():  # every link, in full, in both
            assert url in mail and url in hook["message"], (kind, url)
        assert event.summary.split(":")[0] in mail
    gate = next(h for h in hooks if "fairness_gate FAILED" in h["message"])
    assert RUN_URL in gate["message"] and MODEL_URL in gate["message"]
    waiting = next(m for m in mails if "approval waiting" in m)
    assert "lakeloop approve credit_risk 7 --by <you> --reason <why>" in waiting

    # A retried run, a repeated tick: the same events again send and record nothing.
    again = one_of_each(alerting.use_case.name)
    for event in again.values():
        assert governance.record(alerting.lakehouse, alerting.use_case, event,
                                 environ=alerting.environ).duplicate
    time.sleep(0.2)
    assert len(alerting.smtp.messages) == len(alerting.webhook.bodies) == len(events.KINDS)
    trail = governance.trail(alerting.lakehouse, alerting.use_case).read()
    assert sorted(e.kind for e in trail) == sorted(events.KINDS)
    assert all(e.alerted == "risk_team,ml_oncall" and not e.alert_errors for e in trail)


def test_routes_decide_who_hears_what_and_the_trail_keeps_everything(alerting):
    use_case = alerting.use_case.model_copy(update={"alerts": routed(
        risk=([events.APPROVAL_WAITING, events.FAIRNESS], ["risk_team"]),
        oncall=([events.FAIRNESS, events.RUN_FAILED], ["ml_oncall"]))})
    raised = one_of_each(use_case.name)
    for event in raised.values():
        governance.record(alerting.lakehouse, use_case, event, environ=alerting.environ)
    assert sorted(m.split("\n")[0] for m in alerting.smtp.texts()) == sorted(
        raised[k].title() for k in (events.APPROVAL_WAITING, events.FAIRNESS))
    assert sorted(h["title"] for h in alerting.webhook.bodies) == sorted(
        raised[k].title() for k in (events.FAIRNESS, events.RUN_FAILED))
    trail = governance.trail(alerting.lakehouse, use_case).read()
    assert len(trail) == len(events.KINDS)  # routed or not, every event is audited
    assert {e.kind: e.alerted for e in trail}[events.PROMOTED] == ""


def test_a_destination_down_or_not_configured_is_recorded_and_never_fails_the_decision(
        alerting):
    from tests.support import ports

    closed = ports.reserve()  # nothing listens there
    environ = {MAIL_ENV: alerting.smtp.url.replace(str(alerting.smtp.port), str(closed)),
               HOOK_ENV: ""}
    event = one_of_each(alerting.use_case.name)[events.GATE_FAILED]
    done = governance.record(alerting.lakehouse, alerting.use_case, event, environ=environ)
    assert [d.delivered for d in done.deliveries] == [False, False]
    [entry] = governance.trail(alerting.lakehouse, alerting.use_case).read()
    assert entry.alerted == ""
    assert "risk_team:" in entry.alert_errors and f"{HOOK_ENV} is not set" in entry.alert_errors
    # the destination's URL (its credentials) never reaches the trail
    assert "mailto" not in entry.alert_errors and str(closed) not in entry.alert_errors


def test_a_url_that_is_not_a_destination_is_refused_without_echoing_it(alerting):
    event = one_of_each(alerting.use_case.name)[events.RUN_FAILED]
    secret = "nosuchscheme://user:s3cr3t@example.org"
    done = governance.record(alerting.lakehouse, alerting.use_case, event,
                             environ={MAIL_ENV: secret, HOOK_ENV: alerting.webhook.url})
    assert [d.delivered for d in done.deliveries] == [False, True]
    assert "s3cr3t" not in done.describe()
    assert "s3cr3t" not in governance.trail(alerting.lakehouse,
                                            alerting.use_case).read()[0].alert_errors


@pytest.mark.parametrize(("block", "where", "says"), [
    ("alerts:\n  destinations:\n    team: {env: TEAM_URL}\n  routes:\n"
     "    - {events: [gate_failed], to: [nobody]}\n", "alerts.routes.0.to.0",
     "'nobody' is not a destination"),
    ("alerts:\n  destinations:\n    team: {env: TEAM_URL}\n  routes:\n"
     "    - {events: [gate_exploded], to: [team]}\n", "alerts.routes.0.events.0",
     "'gate_exploded' is not an event kind"),
    ("alerts:\n  destinations:\n    team: {url: 'slack://tokenA/tokenB'}\n",
     "alerts.destinations.team.url", "put it in an environment variable"),
])
def test_a_use_case_with_a_bad_alerts_block_is_refused_with_the_place(block, where, says):
    text = (BUILTIN_USE_CASES / "credit_risk.yaml").read_text() + "\n" + block
    with pytest.raises(UseCaseError) as caught:
        parse_use_case(text, "credit_risk.yaml")
    message = str(caught.value)
    assert says in message and where in message.replace("[", ".").replace("]", "")
