"""Work on a local copy: applying operations, scanning and hashing, early writeback."""
