"""The HTTP service: roles and keys, matching, review, webhooks, hash exchange, metrics."""
