from reliability_support import tree  # noqa: F401  (fixture)
