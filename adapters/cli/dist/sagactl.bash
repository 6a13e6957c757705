# bash completion for sagactl (docs/operations.md, "Man pages and completion").
#
# Subcommands and options come from the --help of the sagactl being completed,
# so they always match that binary. Definition names (list/show/abort/resolve
# --type, purge --definition, definitions and graph NAME) and saga states
# (list --state, resolve --to) come from the database that sagactl would read:
# --db (and --pg-schema) on the line, else $SAGA_DB, else saga.db. Names are those of
# `sagactl definitions --json`; states those of each definition's stored graph
# (`sagactl definitions NAME --json`), of the --type on the line when there is
# one. When the database cannot be read nothing is offered for them.
# Plain bash: needs neither bash-completion's helpers nor jq.

# The sagactl being completed, with the line's --db and --pg-schema: prints what it prints.
_sagactl_run() {
  local global=()
  [[ -n $_sagactl_db ]] && global+=(--db "$_sagactl_db")
  [[ -n $_sagactl_schema ]] && global+=(--pg-schema "$_sagactl_schema")
  "$_sagactl_cmd" "${global[@]}" "$@" 2>/dev/null
}

# The options --help lists, one a line: "--name" for a flag, "--name=" for an
# option that takes a value (CLI11 prints its type after the name).
_sagactl_options() {
  _sagactl_run "$@" --help | sed -n \
    -e 's/^ *\(-[[:alnum:]],\)\{0,1\}\(--[[:alnum:]][[:alnum:]-]*\) [A-Z[].*/\2=/p' \
    -e 's/^ *\(-[[:alnum:]],\)\{0,1\}\(--[[:alnum:]][[:alnum:]-]*\)\( .*\)\{0,1\}$/\2/p'
}

# The subcommands --help lists.
_sagactl_subcommands() {
  _sagactl_run --help | sed -n '/^Subcommands:/,/^$/s/^  \([[:alpha:]][[:alnum:]-]*\) .*/\1/p'
}

# The names of the definitions of the database (registered, or with due timers).
_sagactl_definition_names() {
  _sagactl_run definitions --json | sed -n 's/^ *"name": "\([^"]*\)",\{0,1\}$/\1/p'
}

# The states of definition $1's stored graph ("states" of its JSON, a top-level key).
_sagactl_states_of() {
  _sagactl_run definitions "$1" --json |
    sed -n '/^  "states": \[/,/^  \]/s/^    "\([^"]*\)",\{0,1\}$/\1/p'
}

# Keeps what later completions depend on: the database and the definition.
_sagactl_value() {
  case $1 in
    --db) _sagactl_db=$2 ;;
    --pg-schema) _sagactl_schema=$2 ;;
    --type | --definition) type=$2 ;;
  esac
}

_sagactl() {
  local cur=${COMP_WORDS[COMP_CWORD]}
  local _sagactl_cmd=${COMP_WORDS[0]} _sagactl_db= _sagactl_schema=
  [[ $_sagactl_cmd == "~/"* ]] && _sagactl_cmd=$HOME/${_sagactl_cmd#"~/"}
  command -v -- "$_sagactl_cmd" >/dev/null 2>&1 || _sagactl_cmd=sagactl
  COMPREPLY=()

  # Read the words before the cursor: the subcommand, --db, --pg-schema, --type, positionals,
  # and which option (if any) the current word is the value of.
  local top_opts sub_opts= sub= type= opt= word i positionals=0
  top_opts=$(_sagactl_options)
  for ((i = 1; i < COMP_CWORD; i++)); do
    word=${COMP_WORDS[i]}
    if [[ -n $opt ]]; then  # the value of the option before
      [[ $word == "=" ]] && continue
      _sagactl_value "$opt" "$word"
      opt=
    elif [[ $word == --*=* ]]; then  # when '=' is not in COMP_WORDBREAKS
      _sagactl_value "${word%%=*}" "${word#*=}"
    elif [[ $word == --* ]]; then
      if grep -qx -- "$word=" <<<"$top_opts"$'\n'"$sub_opts"; then opt=$word; fi
    elif [[ $word != -* ]]; then
      if [[ -z $sub ]]; then
        sub=$word
        sub_opts=$(_sagactl_options "$sub")
      else
        ((positionals++))
      fi
    fi
  done
  [[ $cur == "=" ]] && cur=
  if [[ -z $opt && $COMP_CWORD -ge 2 && ${COMP_WORDS[COMP_CWORD - 1]} == "=" ]]; then
    opt=${COMP_WORDS[COMP_CWORD - 2]}
  fi

  local IFS=$'\n' candidates=
  if [[ -n $opt ]]; then
    case $sub:$opt in
      *:--db | graph:--output | graph:--plugin | *:--key | *:--server-key | *:--data | migrate-store:--from)
        COMPREPLY=($(compgen -f -- "$cur"))
        return
        ;;
      list:--type | show:--type | abort:--type | resolve:--type | purge:--definition)
        candidates=$(_sagactl_definition_names)
        ;;
      list:--state | resolve:--to)
        local name
        for name in ${type:-$(_sagactl_definition_names)}; do candidates+=$(_sagactl_states_of "$name")$'\n'; done
        candidates=$(sort -u <<<"$candidates")
        ;;
      graph:--format) candidates=$'dot\nmermaid\nsvg' ;;
      *) return ;;  # a value nothing can be offered for (a number, a time, an id)
    esac
  elif [[ $cur == -* ]]; then
    candidates=$(sed 's/=$//' <<<"$top_opts"$'\n'"$sub_opts" | sort -u)
  elif [[ -z $sub ]]; then
    candidates=$(_sagactl_subcommands)
  elif [[ ($sub == definitions || $sub == graph) && $positionals -eq 0 ]]; then
    candidates=$(_sagactl_definition_names)
  elif [[ $sub == backup ]]; then
    COMPREPLY=($(compgen -f -- "$cur"))
    return
  fi
  COMPREPLY=($(compgen -W "$candidates" -- "$cur"))
}

complete -F _sagactl sagactl
