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

    A source that sets meta line_errors (landed trades and bars) never fails the read on a line
    that does not parse either, and keeps it: the relation gains `_line_number`, `_parse_error`
    (why the line does not parse: not valid UTF-8, not valid JSON, a JSON value that is not an
    object) and `_raw_line` (the line's first 4,096 characters), set on the unparseable rows,
    whose other fields are null. On DuckDB the files with such a line are read again line by
    line, so each of their rows carries its line number (other files are read at full speed);
    Spark and Databricks keep the raw line of a malformed record, without its line number.

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
            'line_errors': meta.get('line_errors', false),
        }) }}
    {%- endfor -%}
    {{ return(none) }}
{%- endmacro %}


{# A select with the declared columns (and _source_file) and no rows. #}
{% macro empty_landed_relation(columns, line_errors=false) -%}
    select
    {%- for column in columns %}
        cast(null as {{ warehouse_type(column.type) }}) as {{ adapter.quote(column.name) }},
    {%- endfor %}
    {%- if line_errors %}
        {{ line_error_columns() }},
    {%- endif %}
        cast(null as {{ warehouse_type('string') }}) as _source_file
    where 1 = 0
{%- endmacro %}


{# The line-error columns of a row that parsed (or of a read without line numbers). #}
{% macro line_error_columns(line_number='null', parse_error='null', raw_line='null') -%}
        cast({{ line_number }} as {{ dbt.type_bigint() }}) as _line_number,
        cast({{ parse_error }} as {{ warehouse_type('string') }}) as _parse_error,
        cast({{ raw_line }} as {{ warehouse_type('string') }}) as _raw_line
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
        {{ return(empty_landed_relation(landed.columns, landed.line_errors)) }}
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
                {%- if landed.skip_bad_lines or landed.line_errors %},
                ignore_errors = true
                {%- endif %}
            )
        {%- endset -%}
        {%- if landed.line_errors -%}
            {{ return(duckdb_landed_lines(landed, file_list, reader)) }}
        {%- endif -%}
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


{#
    DuckDB, NDJSON with line errors kept. read_json with ignore_errors gives one row per
    non-blank line, all fields null where the line does not parse. A file with such a row is
    read again as bytes and split into lines: BLOB-to-text casts write every byte outside
    printable ASCII (quotes, backslashes, newlines) as a \xNN escape, so splitting on the text
    \x0A splits on newline bytes only, and casting each piece back to BLOB restores its bytes.
    Rows of those files then come from the lines, each with its number.
#}
{% macro duckdb_landed_lines(landed, file_list, reader) -%}
    {%- set struct -%}
        {{ '{' }}{% for column in landed.columns %}"{{ column.name }}": "VARCHAR"{{ ", " if not loop.last }}{% endfor %}{{ '}' }}
    {%- endset -%}
    {%- set sql -%}
        with fast as (
            select
            {%- for column in landed.columns %}
                {{ adapter.quote(column.name) }},
            {%- endfor %}
                filename as _source_file
            from {{ reader }}
        ),
        files_with_bad_lines as (
            select distinct _source_file
            from fast
            where {% for column in landed.columns %}{{ adapter.quote(column.name) }} is null{{ " and " if not loop.last }}{% endfor %}
        ),
        reread as (
            select
                filename as _source_file,
                string_split(cast(content as varchar), '\x0A') as escaped_lines
            from read_blob({{ file_list }})
            where filename in (select _source_file from files_with_bad_lines)
        ),
        numbered as (
            select
                _source_file,
                unnest(escaped_lines) as escaped,
                generate_subscripts(escaped_lines, 1) as line_number
            from reread
        ),
        decoded as (
            select
                _source_file,
                line_number,
                escaped,
                try(decode(cast(escaped as blob))) as line
            from numbered
            where trim(escaped) != ''
        ),
        classified as (
            select
                decoded.*,
                case
                    when line is null then 'not valid UTF-8'
                    when not json_valid(line) then 'not valid JSON (cut short or corrupted)'
                    when json_type(line) != 'OBJECT'
                        then 'a JSON ' || lower(json_type(line)) || ', not an object'
                end as parse_error
            from decoded
        ),
        parsed as (
            select
                classified.*,
                case when parse_error is null then json_transform(line, '{{ struct }}') end as fields
            from classified
        )
        select
        {%- for column in landed.columns %}
            {{ adapter.quote(column.name) }},
        {%- endfor %}
            {{ line_error_columns() }},
            _source_file
        from fast
        where _source_file not in (select _source_file from files_with_bad_lines)
        union all
        select
        {%- for column in landed.columns %}
            fields.{{ adapter.quote(column.name) }} as {{ adapter.quote(column.name) }},
        {%- endfor %}
            {{ line_error_columns('line_number', 'parse_error',
                                  'case when parse_error is not null then left(coalesce(line, escaped), 4096) end') }},
            _source_file
        from parsed
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
            {{ adapter.quote(column.name) }} {{ 'string' if landed.format == 'ndjson' else warehouse_type(column.type) }}{{ "," if not loop.last or landed.line_errors }}
        {%- endfor %}
        {%- if landed.line_errors %}
            _corrupt_record string
        {%- endif %}
        )
        using {{ spark_format }}
        options (recursiveFileLookup 'true', pathGlobFilter '{{ landed.file_glob }}'
        {%- if landed.line_errors %}, mode 'PERMISSIVE', columnNameOfCorruptRecord '_corrupt_record'{% endif %})
        location '{{ landed.path }}'
    {%- endcall -%}
    {%- set sql -%}
        select
        {%- for column in landed.columns %}
            {{ adapter.quote(column.name) }},
        {%- endfor %}
        {%- if landed.line_errors %}
            {{ spark_line_error_columns() }},
        {%- endif %}
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
        {%- if landed.line_errors %}, `_corrupt_record` string{% endif -%}
    {%- endset -%}
    {%- set sql -%}
        select
        {%- for column in landed.columns %}
            {{ adapter.quote(column.name) }},
        {%- endfor %}
        {%- if landed.line_errors %}
            {{ spark_line_error_columns() }},
        {%- endif %}
            _metadata.file_path as _source_file
        from read_files(
            '{{ landed.path }}',
            format => '{{ 'json' if landed.format == 'ndjson' else landed.format }}',
            schema => '{{ schema_ddl }}',
            {%- if landed.line_errors %}
            mode => 'PERMISSIVE',
            columnNameOfCorruptRecord => '_corrupt_record',
            {%- endif %}
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


{# Spark and Databricks: a malformed record keeps its raw text; the reader has no line numbers. #}
{% macro spark_line_error_columns() -%}
    {{ line_error_columns(
        'null',
        "case when _corrupt_record is not null then 'not valid JSON (cut short or corrupted)' end",
        'substring(_corrupt_record, 1, 4096)',
    ) }}
{%- endmacro %}
