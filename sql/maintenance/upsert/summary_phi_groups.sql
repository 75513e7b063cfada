-- title: summary_phi_groups: add what the workers counted
-- description: Adds one row per site, tag and category, counted by the workers as they read
--   (ibash_index/tally.py); the same sums ../summary_phi_groups.sql adds.
INSERT INTO summary_phi_groups (site, tag, name, private_creator, category, action, instances, top_elements,
                                nested_elements)
VALUES (:site, :tag, :name, :private_creator, :category, :action, :instances, :top_elements, :nested_elements)
ON CONFLICT (site, tag, name, private_creator, category, action) DO UPDATE
SET instances = summary_phi_groups.instances + excluded.instances,
    top_elements = summary_phi_groups.top_elements + excluded.top_elements,
    nested_elements = summary_phi_groups.nested_elements + excluded.nested_elements
