"""Presentation: what a person reads and looks at. Terminal tables (:mod:`arena.report.cell`),
the duel's report and plots (:mod:`arena.report.duel`), a defense's panels, the trigger grid,
and the catalog that ``arena list`` prints."""
