-- title: summary_values: add what the workers counted
-- description: Adds one row per site, tag and value, counted by the workers as they read
--   (ibash_index/tally.py); the same sums ../summary_values.sql adds from the elements.
INSERT INTO summary_values (site, tag_id, value_key, value, elements)
VALUES (:site, :tag_id, :value_key, :value, :elements)
ON CONFLICT (site, tag_id, value_key) DO UPDATE
SET elements = summary_values.elements + excluded.elements
