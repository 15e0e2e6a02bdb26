"""The data stages as Ibis expressions: one implementation, run by DuckDB (embedded default) or Spark.

Every function here takes and returns :class:`ibis.Table` expressions (or small Python results of
aggregates), never a whole table in Python memory, so the same code runs on an in-process DuckDB that
spills to disk and on a Spark cluster. :mod:`.backends` opens the engine; :mod:`.log_features`,
:mod:`.splitting` and :mod:`.transformer` are the stages; :mod:`.tables` reads and writes parquet.
"""
