"""The two-way sync with OpenAI's Admin API: pulls of the hierarchy, the audit log, usage
and costs; reconciliation of logged spend with OpenAI's bill (docs/sync.md)."""
