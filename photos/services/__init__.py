"""Business logic of the photos app: plain typed functions, called by views, actors and commands."""
