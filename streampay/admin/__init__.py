"""What only an admin opens in a browser: RQ's dashboard (rq-dashboard), behind a cookie of its own."""
