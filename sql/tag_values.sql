-- title: Values of one tag per site
-- description: The distinct values of one tag at each site, with how many instances hold each
--   value and how often it occurs, at every depth (values inside sequences too). Binary values
--   show as sha1:<hash>; sequences have no value. An empty value shows as '' with its count.
-- param tag: the tag as a keyword (MagneticFieldStrength, any case), (GGGG,EEEE) or GGGG,EEEE, GGGGEEEE, or (GGGG,xxEE) for a private tag
-- param site: only this site (exact name) [default: '']
SELECT COALESCE(i.site, '') AS site,
       COALESCE(t.private_tag, t.tag_text) AS tag,
       CASE WHEN t.keyword <> '' THEN t.keyword ELSE t.name END AS name,
       t.private_creator,
       e.vr,
       COALESCE(e.value, 'sha1:' || e.hash) AS value,
       COUNT(DISTINCT e.instance_id) AS instances,
       COUNT(*) AS occurrences
FROM elements AS e
JOIN tags AS t ON t.id = e.tag_id
JOIN instances AS i ON i.id = e.instance_id
WHERE e.tag_id IN (
        SELECT w.id
        FROM tags AS w
        WHERE LOWER(w.keyword) = LOWER(:tag)
           OR w.tag_text IN (REPLACE(UPPER(:tag), ' ', ''), '(' || REPLACE(UPPER(:tag), ' ', '') || ')')
           OR w.tag_hex = UPPER(:tag)
           OR w.private_tag IN (REPLACE(REPLACE(UPPER(:tag), ' ', ''), 'XX', 'xx'),
                                '(' || REPLACE(REPLACE(UPPER(:tag), ' ', ''), 'XX', 'xx') || ')'))
  AND (:site = '' OR COALESCE(i.site, '') = :site)
GROUP BY COALESCE(i.site, ''), COALESCE(t.private_tag, t.tag_text), t.keyword, t.name, t.private_creator, e.vr,
         COALESCE(e.value, 'sha1:' || e.hash)
ORDER BY site, tag, t.private_creator, value
