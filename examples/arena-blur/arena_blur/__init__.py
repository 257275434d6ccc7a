"""An example Arena plugin: ``blur``, a Gaussian-blur input purifier, and ``frame``, a trigger
that draws a thin frame around the image. Installed, its entry points add both to Arena's
catalog (``arena list`` shows them with this distribution as their origin)."""
