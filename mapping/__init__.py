"""The admin-edited mapping file: object pairs, field rules, stage maps, transforms and SLAs.

``load_mapping`` reads and validates a file (safe YAML only, every problem reported with its
line); ``plan_fields`` decides, for one linked pair of records, what each side must change.
"""
