"""SplitPlace (Tuli 2021): a mobile edge cluster simulator, split and placement policies."""
