ALTER FUNCTION ledger.touch_updated_at() RESET search_path;
