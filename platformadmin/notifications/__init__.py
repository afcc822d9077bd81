"""Notifications: channels per organization and an outbox of rows, each delivered once.

A layer of its own between orgs and keys: keys (rotation reminders) and usage (budget
alerts) write their Notification rows in the same transaction as their state change.
"""
