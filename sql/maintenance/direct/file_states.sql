-- title: File states
-- description: What the index recorded of each file, to compare with what the crawl finds now.
SELECT path_bytes, size, mtime_ns, status, root FROM files
