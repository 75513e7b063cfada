-- title: summary_tags: add what the workers counted
-- description: Adds one row of counts per site and tag, counted by the workers as they read
--   (ibash_index/tally.py); the same sums ../summary_tags.sql adds from the elements.
INSERT INTO summary_tags (site, tag_id, instances, non_empty)
VALUES (:site, :tag_id, :instances, :non_empty)
ON CONFLICT (site, tag_id) DO UPDATE
SET instances = summary_tags.instances + excluded.instances,
    non_empty = summary_tags.non_empty + excluded.non_empty
