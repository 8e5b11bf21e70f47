"""What each receiver type is sent for one delivery: a webhook's JSON body, a Slack message, an
email's subject and bodies, a PagerDuty Events v2 event. Pure functions of the claimed delivery."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import jinja2

# The event fields `monitorctl events --format json` prints: what a receiver is told of an event.
EVENT_FIELDS = ["event_id", "detector", "kind", "severity", "status", "subject", "dedup_key", "txn_id", "amount",
                "summary", "evidence", "first_seen", "last_seen", "occurrences", "acknowledged_at",
                "acknowledged_by", "resolved_at", "resolved_by", "resolution_note"]

TRANSITION_WORDS = {
    "opened": "new", "severity_changed": "severity changed", "acknowledged": "acknowledged",
    "resolved": "resolved", "auto_resolved": "resolved by itself", "repeat": "still open",
    "escalated": "escalated: still open and not acknowledged", "digest": "many new events", "test": "test",
}
PAGERDUTY_SEVERITY = {"critical": "critical", "high": "error", "medium": "warning", "low": "info"}
PAGERDUTY_ACTION = {"acknowledged": "acknowledge", "resolved": "resolve", "auto_resolved": "resolve"}
SLACK_EMOJI = {"critical": ":red_circle:", "high": ":large_orange_circle:", "medium": ":large_yellow_circle:",
               "low": ":white_circle:"}

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def public_event(event: dict | None) -> dict | None:
    """The event as `events --format json` shows it (JSON types: times ISO 8601, amounts numbers)."""
    if event is None:
        return None
    return {k: event.get(k) for k in EVENT_FIELDS}


def _default(value):
    if isinstance(value, Decimal):
        return float(value) if value == value.to_integral_value() or abs(value) < 10**15 else str(value)
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    raise TypeError(f"not JSON: {type(value).__name__}")


def dumps(value) -> str:
    return json.dumps(value, default=_default, separators=(",", ":"), sort_keys=True)


def webhook_body(d: dict) -> dict:
    """The webhook's JSON: the delivery's id and idempotency key, the transition, the event (or the digest)."""
    body = {"type": f"monitorctl.event.{d['transition']}", "delivery_id": d["delivery_id"],
            "idempotency_key": str(d["idempotency_key"]), "transition": d["transition"],
            "receiver": d["receiver"], "attempt": d["attempts"], "event": public_event(d.get("event"))}
    if d.get("digest"):
        body["digest"] = d["digest"]
    if d.get("test"):
        body["test"] = True
    return body


def headline(d: dict) -> str:
    """One line for a subject, a Slack fallback or a PagerDuty summary."""
    test = "[TEST] " if d.get("test") else ""
    if d["transition"] == "digest":
        g = d["digest"]
        return (f"{test}{g['events']} new {d['detector']} events, {g['amount']} at stake "
                f"(most severe: {g['severity']})")
    e = d["event"]
    return (f"{test}{e['severity'].upper()} {e['detector']} {TRANSITION_WORDS.get(d['transition'], d['transition'])}: "
            f"{e['summary']}")


def event_link(config: dict, event_id) -> str | None:
    base = (config.get("dashboard_url") or "").rstrip("/")
    return f"{base}/events/{event_id}" if base and event_id is not None else None


def slack_message(d: dict, config: dict) -> dict:
    """An incoming-webhook message in Block Kit: severity, detector, subject, amount, summary, first seen."""
    text = headline(d)
    if d["transition"] == "digest":
        g = d["digest"]
        lines = "\n".join(f"• {x['subject']}: {x['amount']} ({x['summary']})" for x in g.get("largest") or [])
        blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": f"*{text}*"}},
                  {"type": "section", "text": {"type": "mrkdwn", "text": f"The {min(10, g['events'])} largest:\n{lines}"}}]
        return {"text": text, "blocks": blocks}
    e = d["event"]
    fields = [("Severity", f"{SLACK_EMOJI.get(e['severity'], '')} {e['severity']}"), ("Detector", e["detector"]),
              ("Subject", e["subject"]), ("Amount", "-" if e.get("amount") is None else str(e["amount"])),
              ("Status", e["status"]), ("First seen", e.get("first_seen") or "-")]
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": text[:150]}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in fields]},
        {"type": "section", "text": {"type": "mrkdwn", "text": e["summary"]}},
    ]
    link = event_link(config, e["event_id"])
    if link:
        blocks.append({"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": f"Event {e['event_id']}"}, "url": link}]})
    return {"text": text, "blocks": blocks}


def pagerduty_event(d: dict, routing_key: str, config: dict) -> dict:
    """An Events API v2 event: trigger, acknowledge or resolve, one incident per monitorctl event."""
    action = PAGERDUTY_ACTION.get(d["transition"], "trigger")
    if d["transition"] == "digest":
        dedup = f"monitorctl-{config.get('source', 'monitorctl')}-digest-{d['delivery_id']}"
        severity = PAGERDUTY_SEVERITY.get(d["digest"].get("severity"), "warning")
        details = d["digest"]
    else:
        e = d["event"]
        dedup = f"monitorctl-{config.get('source', 'monitorctl')}-event-{e['event_id']}"
        severity = PAGERDUTY_SEVERITY.get(e["severity"], "warning")
        details = public_event(e)
    body = {"routing_key": routing_key, "event_action": action, "dedup_key": dedup}
    if action == "trigger":
        body["payload"] = {"summary": headline(d)[:1024], "source": config.get("source", "monitorctl"),
                           "severity": severity, "component": d["detector"], "custom_details": details}
        link = event_link(config, (d.get("event") or {}).get("event_id"))
        if link:
            body["links"] = [{"href": link, "text": "monitorctl event"}]
    return json.loads(dumps(body))


def _environment(config: dict) -> jinja2.Environment:
    paths = [config["templates"]] if config.get("templates") else []
    return jinja2.Environment(loader=jinja2.FileSystemLoader([*paths, str(TEMPLATES)]),
                              autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined,
                              keep_trailing_newline=True)


def email_parts(d: dict, config: dict) -> tuple[str, str, str]:
    """Subject, text body and HTML body, from email.txt.j2 and email.html.j2 (a directory of the
    receiver's own, `templates` in its config, is searched first)."""
    env = _environment(config)
    shown = {k: d.get(k) for k in ("delivery_id", "idempotency_key", "transition", "detector", "attempts",
                                   "receiver", "created_at")}  # never the receiver's secret or config
    context = {"delivery": shown, "event": public_event(d.get("event")), "digest": d.get("digest"),
               "transition": d["transition"], "words": TRANSITION_WORDS.get(d["transition"], d["transition"]),
               "headline": headline(d), "link": event_link(config, (d.get("event") or {}).get("event_id")),
               "test": bool(d.get("test"))}
    subject = "[monitorctl] " + headline(d)
    return (" ".join(subject.split())[:250], env.get_template("email.txt.j2").render(context),
            env.get_template("email.html.j2").render(context))
