-- title: summary_phi_groups: elements that may identify a person
-- description: Adds (:sign = 1) or takes away (:sign = -1) the instances in summary_batch_phi from
--   summary_phi_groups: per site, tag and category (as phi.sql defines them), the instances
--   holding such an element with a value, and how many such elements sit at top level and inside
--   sequences.
INSERT INTO summary_phi_groups (site, tag, name, private_creator, category, action, instances, top_elements,
                                nested_elements)
SELECT h.site, h.tag, h.name, h.private_creator, h.category, h.action,
       :sign * COUNT(DISTINCT h.instance_id),
       :sign * SUM(CASE WHEN h.depth = 0 THEN 1 ELSE 0 END),
       :sign * SUM(CASE WHEN h.depth > 0 THEN 1 ELSE 0 END)
FROM summary_batch_phi AS h
WHERE true
GROUP BY h.site, h.tag, h.name, h.private_creator, h.category, h.action
ORDER BY h.site, h.tag, h.name, h.private_creator, h.category, h.action
ON CONFLICT (site, tag, name, private_creator, category, action) DO UPDATE
SET instances = summary_phi_groups.instances + excluded.instances,
    top_elements = summary_phi_groups.top_elements + excluded.top_elements,
    nested_elements = summary_phi_groups.nested_elements + excluded.nested_elements
