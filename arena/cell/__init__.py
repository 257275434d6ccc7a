"""One cell of the game: an attacker strategy against a defender strategy, on one seed.

* :mod:`arena.cell.setting`: what every cell of a duel shares (data, model, gates, cache, device);
* :mod:`arena.cell.rules`: the payoff rules and the papers' metrics;
* :mod:`arena.cell.result`: the typed result of a scored cell, and its JSON record;
* :mod:`arena.cell.artifacts`: the clean model, the BadNet and the detectors' clean verdicts,
  from the artifact cache or made now;
* :mod:`arena.cell.play`: scoring a cell, and cells cached by content key;
* :mod:`arena.cell.runner`: Ray (joined or started here) and missing cells as Ray tasks.
"""
