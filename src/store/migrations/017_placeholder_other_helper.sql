-- cairn: non-breaking
-- Placeholder: 017 is another helper's migration (issue 14 round 3). Migrations must be numbered
-- without gaps, so this branch carries an empty 017 to apply its 018; drop this file at merge.
select 1;
