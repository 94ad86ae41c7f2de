{#
    Read files that Python landed, or a typed empty relation when there are none yet.

    The columns, the folder (relative to the data home), the file-name pattern and the format
    come from the source's YAML, so the landed schema is declared once. Names starting with "."
    are never read: writers land files under a hidden temporary name and rename them when
    complete. NDJSON columns are read as text so that no landed value can fail the read; silver
    casts them and quarantines what does not cast. Parquet columns are read with their types.

    A source whose files are appended in place (the audit log) sets meta skip_bad_lines: a line
    torn by a killed writer is then skipped instead of failing the read (its fields are null on
    Spark and Databricks, and the models drop rows without their key).

    Arguments:
      source_name, table_name  the dbt source table
      skip_files_in            a relation with a _source_file column (the model itself when
                               incremental): files already listed there are not read again
    Yields a select of the declared columns plus _source_file.
#}
{% macro landed_files(source_name, table_name, skip_files_in=none) -%}
    {#- Calling source() records the lineage edge in the DAG and docs. -#}
    {%- set source_relation = source(source_name, table_name) -%}
    {%- if not execute -%}
        {{ return(empty_landed_relation([])) }}
    {%- endif -%}
    {%- set landed = landed_source_spec(source_name, table_name) -%}
    {{ return(adapter.dispatch('landed_files', 'tradewatch')(landed, skip_files_in)) }}
{%- endmacro %}


{# The source's columns, folder, pattern and format as a plain dict (execute time only). #}
{% macro landed_source_spec(source_name, table_name) -%}
    {%- for node in graph.sources.values()
        if node.source_name == source_name and node.name == table_name -%}
        {%- set meta = node.config.meta or node.meta -%}
        {%- set columns = [] -%}
        {%- for column in node.columns.values() -%}
            {%- do columns.append({'name': column.name, 'type': column.data_type or 'string'}) -%}
        {%- endfor -%}
        {{ return({
            'name': table_name,
            'columns': columns,
            'path': data_home() ~ '/' ~ meta['landed_path'],
            'file_glob': meta['file_glob'],
            'format': meta['file_format'],
            'skip_bad_lines': meta.get('skip_bad_lines', false),
        }) }}
    {%- endfor -%}
    {{ return(none) }}
{%- endmacro %}


{# A select with the declared columns (and _source_file) and no rows. #}
{% macro empty_landed_relation(columns) -%}
    select
    {%- for column in columns %}
        cast(null as {{ warehouse_type(column.type) }}) as {{ adapter.quote(column.name) }},
    {%- endfor %}
        cast(null as {{ warehouse_type('string') }}) as _source_file
    where 1 = 0
{%- endmacro %}


{% macro default__landed_files(landed, skip_files_in) -%}
    {{ exceptions.raise_compiler_error(
        "tradewatch: no reader of landed files for adapter " ~ adapter.type()) }}
{%- endmacro %}


{#
    DuckDB: list the files with glob() first, so that only new files are read and an empty
    folder gives a typed empty relation instead of "No files found".
#}
{% macro duckdb__landed_files(landed, skip_files_in) -%}
    {%- set listing_sql -%}
        select file
        from glob('{{ landed.path | replace("'", "''") }}/**/{{ landed.file_glob }}')
        where not starts_with(parse_filename(file), '.')
        {%- if skip_files_in is not none %}
          and file not in (
              select _source_file from {{ skip_files_in }} where _source_file is not null
          )
        {%- endif %}
        order by file
    {%- endset -%}
    {%- set files = run_query(listing_sql).columns[0].values() -%}
    {%- if files | length == 0 -%}
        {{ return(empty_landed_relation(landed.columns)) }}
    {%- endif -%}
    {%- set file_list -%}
        [{% for file in files %}'{{ file | replace("'", "''") }}'{{ ", " if not loop.last }}{% endfor %}]
    {%- endset -%}
    {%- if landed.format == 'ndjson' -%}
        {%- set reader -%}
            read_json(
                {{ file_list }},
                format = 'newline_delimited',
                columns = {
                {%- for column in landed.columns %}
                    '{{ column.name }}': 'VARCHAR'{{ "," if not loop.last }}
                {%- endfor %}
                },
                filename = true,
                hive_partitioning = false
                {%- if landed.skip_bad_lines %},
                ignore_errors = true
                {%- endif %}
            )
        {%- endset -%}
    {%- else -%}
        {%- set reader -%}
            read_parquet({{ file_list }}, filename = true, union_by_name = true, hive_partitioning = false)
        {%- endset -%}
    {%- endif -%}
    {%- set sql -%}
        select
        {%- for column in landed.columns %}
            {{ landed_column(column, landed.format) }} as {{ adapter.quote(column.name) }},
        {%- endfor %}
            filename as _source_file
        from {{ reader }}
    {%- endset -%}
    {{ return(sql) }}
{%- endmacro %}


{# NDJSON fields stay text (silver casts them); parquet fields take their declared type. #}
{% macro landed_column(column, file_format) -%}
    {%- if file_format == 'ndjson' -%}
        {{ adapter.quote(column.name) }}
    {%- else -%}
        cast({{ adapter.quote(column.name) }} as {{ warehouse_type(column.type) }})
    {%- endif -%}
{%- endmacro %}


{#
    Spark: an external table over the folder (recreated each run, so it always points at the
    current data home). Spark lists the folder at read time, skips hidden files itself, and an
    external table over a folder that does not exist yet reads as empty. Dropping an external
    table leaves its files alone.
#}
{% macro spark__landed_files(landed, skip_files_in) -%}
    {%- set table_name = target.schema ~ '._landed_' ~ landed.name -%}
    {%- set spark_format = 'json' if landed.format == 'ndjson' else landed.format -%}
    {%- call statement('drop_landed_' ~ landed.name) -%}
        drop table if exists {{ table_name }}
    {%- endcall -%}
    {%- call statement('create_landed_' ~ landed.name) -%}
        create table {{ table_name }} (
        {%- for column in landed.columns %}
            {{ adapter.quote(column.name) }} {{ 'string' if landed.format == 'ndjson' else warehouse_type(column.type) }}{{ "," if not loop.last }}
        {%- endfor %}
        )
        using {{ spark_format }}
        options (recursiveFileLookup 'true', pathGlobFilter '{{ landed.file_glob }}')
        location '{{ landed.path }}'
    {%- endcall -%}
    {%- set sql -%}
        select
        {%- for column in landed.columns %}
            {{ adapter.quote(column.name) }},
        {%- endfor %}
            _metadata.file_path as _source_file
        from {{ table_name }}
        {%- if skip_files_in is not none %}
        where _metadata.file_path not in (
            select _source_file from {{ skip_files_in }} where _source_file is not null
        )
        {%- endif %}
    {%- endset -%}
    {{ return(sql) }}
{%- endmacro %}


{#
    Databricks: the files live in a Unity Catalog volume, which cannot be a table location, so
    read_files() reads them in place. No statement runs at compile time, so the model compiles
    without a workspace. The volume folders are created by the flows before the first build.
#}
{% macro databricks__landed_files(landed, skip_files_in) -%}
    {%- set schema_ddl -%}
        {%- for column in landed.columns -%}
            `{{ column.name }}` {{ 'string' if landed.format == 'ndjson' else warehouse_type(column.type) }}{{ ", " if not loop.last }}
        {%- endfor -%}
    {%- endset -%}
    {%- set sql -%}
        select
        {%- for column in landed.columns %}
            {{ adapter.quote(column.name) }},
        {%- endfor %}
            _metadata.file_path as _source_file
        from read_files(
            '{{ landed.path }}',
            format => '{{ 'json' if landed.format == 'ndjson' else landed.format }}',
            schema => '{{ schema_ddl }}',
            recursiveFileLookup => true,
            pathGlobFilter => '{{ landed.file_glob }}'
        )
        {%- if skip_files_in is not none %}
        where _metadata.file_path not in (
            select _source_file from {{ skip_files_in }} where _source_file is not null
        )
        {%- endif %}
    {%- endset -%}
    {{ return(sql) }}
{%- endmacro %}
