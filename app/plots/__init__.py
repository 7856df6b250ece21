"""Plot views, one file per kind of view; each redraws from the session model on a timer."""
