-- title: Private creators per site
-- description: Each private creator string found at each site, with the manufacturer of the
--   series that carry it and the odd group its block sits in: how many private elements it
--   owns (at every depth, sequences included) and how many instances carry them.
SELECT s.site,
       COALESCE(se.manufacturer, '') AS manufacturer,
       s.private_creator,
       s.private_group,
       CAST(SUM(s.elements) AS INTEGER) AS elements,
       CAST(SUM(s.instances) AS INTEGER) AS instances
FROM summary_private AS s
JOIN series AS se ON se.id = s.series_id
GROUP BY s.site, COALESCE(se.manufacturer, ''), s.private_creator, s.private_group
ORDER BY s.site, manufacturer, s.private_creator, s.private_group
