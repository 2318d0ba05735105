"""Model implementations owned by bindsearch (written from public facts, not copied).

Each subpackage implements one model family in plain PyTorch and loads that
family's published checkpoint format without key conversion.
"""
