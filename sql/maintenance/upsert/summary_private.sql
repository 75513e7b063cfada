-- title: summary_private: add what the workers counted
-- description: Adds one row per series, site, private creator and odd group, counted by the
--   workers as they read (ibash_index/tally.py); the same sums ../summary_private.sql adds.
INSERT INTO summary_private (series_id, site, private_creator, private_group, elements, instances)
VALUES (:series_id, :site, :private_creator, :private_group, :elements, :instances)
ON CONFLICT (series_id, site, private_creator, private_group) DO UPDATE
SET elements = summary_private.elements + excluded.elements,
    instances = summary_private.instances + excluded.instances
