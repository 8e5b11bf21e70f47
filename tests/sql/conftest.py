import pytest

from tests.ledger import Ledger


@pytest.fixture
def ledger(conn):
    conn.execute("truncate ledger.scans, ledger.transactions, ledger.accounts")
    return Ledger(conn)
