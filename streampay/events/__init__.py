"""The outbox: events other systems must hear about, written in the transaction of what they report."""
