"""Webhook endpoints, their signed deliveries (Standard Webhooks), and the delivery log."""
