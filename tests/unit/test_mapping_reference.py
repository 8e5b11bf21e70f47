"""docs/mapping.md is the complete reference of the mapping file: every key monitorctl accepts is named there."""

from pathlib import Path

import pytest

from monitorctl import mapping
from monitorctl.errors import UsageError

DOC = (Path(__file__).resolve().parents[2] / "docs" / "mapping.md").read_text()


@pytest.mark.parametrize("key", mapping.documented_keys())
def test_every_accepted_key_is_documented(key):
    assert f"`{key}`" in DOC, f"docs/mapping.md does not document `{key}`"


def test_the_documented_keys_are_the_accepted_ones():
    """documented_keys is built from what check_shape accepts: a key it lists is accepted, and a key
    it does not list is refused as unknown."""
    base = {"relation": "t", "columns": {"txn_id": "id", "account_id": "a", "amount": "x", "created_at": "c"}}
    accounts = {"relation": "a", "columns": {"account_id": "id", "balance": "b"}}
    for key in ("where", "answers"):
        spec = dict(base, **{key: "s.x > 0" if key == "where" else
                             {"relation": "st", "key": "t", "order_by": "id", "status": "state"}})
        mapping.check_shape({"sources": {"transactions": spec, "accounts": accounts}})
    with pytest.raises(UsageError, match="unknown key 'sources.transactions.filter'"):
        mapping.check_shape({"sources": {"transactions": dict(base, filter="x"), "accounts": accounts}})
    for col in mapping.COLUMNS["accounts"]:
        mapping.check_shape({"sources": {"transactions": base, "accounts": {
            "relation": "a", "columns": dict(accounts["columns"], **{col: "c"})}}})


@pytest.mark.parametrize("config, message", [
    ({"amount_scale": 250}, "'amount_scale' = 250 must be 1, 10, 100"),
    ({"amount_scale": True}, "'amount_scale' = True"),
    ({"detectors": {"failed_debit": {"enabled": "no"}}}, "'detectors.failed_debit.enabled' must be true or false"),
    ({"sources": {"transactions": {"relation": "t", "columns": {
        "txn_id": "id", "account_id": "a", "debit_account": "d", "credit_account": "c", "amount": "x",
        "created_at": "c"}}}}, "map either account_id"),
    ({"sources": {"transactions": {"relation": "t", "columns": {
        "txn_id": "id", "debit_account": "d", "amount": "x", "created_at": "c"}}}},
     "'sources.transactions.columns.credit_account' is missing"),
    ({"sources": {"transactions": {"relation": "t", "columns": {
        "txn_id": "id", "account_id": "a", "amount": "x", "created_at": "c",
        "status": {"column": "s", "map": {"OK": "done"}}}}}},
     "'sources.transactions.columns.status.map.OK' = 'done' must be one of 'success', 'failed', 'pending', 'ignored'"),
    ({"sources": {"transactions": {"relation": "t", "columns": {
        "txn_id": "id", "account_id": "a", "amount": {"column": "x", "time_zone": "UTC"}, "created_at": "c"}}}},
     "unknown key 'sources.transactions.columns.amount.time_zone'"),
    ({"sources": {"transactions": {"relation": "t", "columns": {
        "txn_id": "id", "account_id": "a", "amount": "x", "created_at": {"column": "c", "time_zone": "UTC'; drop"}}}}},
     "is not a time zone name"),
    ({"sources": {"transactions": {"relation": "t", "columns": {
        "txn_id": "id", "account_id": "a", "amount": "x", "created_at": {"column": "c", "sql": "now()"}}}}},
     "needs exactly one of 'column' or 'sql'"),
    ({"sources": {"transactions": {"relation": "t", "answers": {"relation": "st", "key": "t"}, "columns": {
        "txn_id": "id", "account_id": "a", "amount": "x", "created_at": "c"}}}},
     "'sources.transactions.answers.order_by' is missing"),
])
def test_malformed_mappings_are_refused_naming_the_key(config, message):
    with pytest.raises(UsageError, match=None) as exc:
        mapping.check_shape(config)
    assert message in str(exc.value)
