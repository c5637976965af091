"""Change records: which zones may differ between the copies (bitmap, activity log)."""
