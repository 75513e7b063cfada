-- title: Private creators per site
-- description: Each private creator string found at each site, with the manufacturer of the
--   series that carry it and the odd group its block sits in: how many private elements it
--   owns (at every depth, sequences included) and how many instances carry them.
SELECT COALESCE(i.site, '') AS site,
       COALESCE(se.manufacturer, '') AS manufacturer,
       t.private_creator,
       SUBSTR(t.tag_hex, 1, 4) AS private_group,
       COUNT(*) AS elements,
       COUNT(DISTINCT e.instance_id) AS instances
FROM elements AS e
JOIN tags AS t ON t.id = e.tag_id
JOIN instances AS i ON i.id = e.instance_id
JOIN series AS se ON se.id = i.series_id
WHERE e.tag_id IN (SELECT p.id FROM tags AS p WHERE p.private_creator <> '')
GROUP BY COALESCE(i.site, ''), COALESCE(se.manufacturer, ''), t.private_creator, SUBSTR(t.tag_hex, 1, 4)
ORDER BY site, manufacturer, t.private_creator, private_group
