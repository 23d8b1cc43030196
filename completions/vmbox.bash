# bash completion for vmbox.  Install: source it, or copy to
# /usr/share/bash-completion/completions/vmbox
_vmbox_images() {
  local root_opt=()
  [ -n "${_vmbox_root:-}" ] && root_opt=(--root "$_vmbox_root")
  vmbox "${root_opt[@]}" images 2>/dev/null |
    awk 'NR > 1 && $1 != "<none>" { print ($2 == "<none>") ? $1 : $1 ":" $2 }'
}

_vmbox_boxes() {
  local root_opt=()
  [ -n "${_vmbox_root:-}" ] && root_opt=(--root "$_vmbox_root")
  vmbox "${root_opt[@]}" ps -a 2>/dev/null | awk 'NR > 1 { print $NF }'
}

_vmbox() {
  local cur prev words cword
  if declare -F _init_completion >/dev/null; then
    _init_completion || return
  else
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD - 1]}
    words=("${COMP_WORDS[@]}")
    cword=$COMP_CWORD
  fi
  local commands="run exec ps logs wait stop kill rm inspect cp pull import images rmi image login logout help version"
  local global="--root --format --debug --quiet -q --insecure-registry --help --version"
  local cmd='' sub='' i _vmbox_root=''
  for ((i = 1; i < cword; i++)); do
    case ${words[i]} in
      --root) _vmbox_root=${words[i + 1]}; i=$((i + 1)) ;;
      --format | --insecure-registry | --platform | --disk-size | -u | --username | -p | --password) i=$((i + 1)) ;;
      -*) ;;
      *)
        if [ -z "$cmd" ]; then cmd=${words[i]}; elif [ -z "$sub" ]; then sub=${words[i]}; fi
        ;;
    esac
  done

  case $prev in
    --root) COMPREPLY=($(compgen -d -- "$cur")); return ;;
    --kernel) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    --pull) COMPREPLY=($(compgen -W "missing always never" -- "$cur")); return ;;
    --log-opt) COMPREPLY=($(compgen -W "max-size= max-file=2" -- "$cur")); return ;;
    --format) COMPREPLY=($(compgen -W "table json" -- "$cur")); return ;;
    --platform) COMPREPLY=($(compgen -W "linux/amd64 linux/arm64 linux/arm/v7 linux/386 linux/ppc64le linux/s390x linux/riscv64" -- "$cur")); return ;;
    --insecure-registry | --disk-size | -u | --username | -p | --password) return ;;
  esac

  local opts=
  case $cmd in
    "") opts="$global"; [[ $cur != -* ]] && opts="$commands" ;;
    pull) opts="--platform --insecure-registry --disk-size -q --quiet --format --help" ;;
    import)
      opts="--platform -q --quiet --format --help"
      if [[ $cur != -* ]]; then COMPREPLY=($(compgen -f -- "$cur")); return; fi
      ;;
    images) opts="-q --quiet --digests --format --help" ;;
    rmi) opts="-f --force --help"; [[ $cur != -* ]] && opts=$(_vmbox_images) ;;
    image)
      if [ -z "$sub" ]; then
        opts="inspect ls rm prune pull import"
      else
        case $sub in
          inspect | rm) opts="--format --help"; [[ $cur != -* ]] && opts=$(_vmbox_images) ;;
          ls) opts="-q --quiet --digests --format --help" ;;
          prune) opts="--help" ;;
          pull) opts="--platform --insecure-registry --disk-size -q --quiet --format --help" ;;
          import) COMPREPLY=($(compgen -f -- "$cur")); return ;;
        esac
      fi
      ;;
    run)
      opts="-d --detach -i --interactive -t --tty --rm --name -e --env --env-file -w --workdir -u --user --entrypoint -v --volume --tmpfs -h --hostname --read-only --cpus -m --memory --pids-limit --timeout --backend --net --pull --log-opt --kernel --help"
      [[ $cur != -* ]] && opts=$(_vmbox_images)
      ;;
    exec) opts="-i --interactive -t --tty -e --env -w --workdir -u --user --help"; [[ $cur != -* ]] && opts=$(_vmbox_boxes) ;;
    ps) opts="-a --all -q --quiet --format --help" ;;
    logs) opts="-f --follow -n --tail --help"; [[ $cur != -* ]] && opts=$(_vmbox_boxes) ;;
    stop) opts="-t --time --help"; [[ $cur != -* ]] && opts=$(_vmbox_boxes) ;;
    kill) opts="-s --signal --help"; [[ $cur != -* ]] && opts=$(_vmbox_boxes) ;;
    rm) opts="-f --force --help"; [[ $cur != -* ]] && opts=$(_vmbox_boxes) ;;
    wait | inspect) opts="--help"; [[ $cur != -* ]] && opts=$(_vmbox_boxes) ;;
    cp)
      opts="-a --archive -L --follow-link --help"
      if [[ $cur != -* ]]; then
        # BOX: on one side, a host path on the other
        COMPREPLY=($(compgen -f -- "$cur") $(compgen -W "$(_vmbox_boxes | sed 's/$/:/')" -- "$cur"))
        compopt -o nospace 2>/dev/null
        return
      fi
      ;;
    login) opts="-u --username -p --password --password-stdin --help" ;;
    logout) opts="--help" ;;
    help) [ -z "$sub" ] && opts="$commands" ;;
    version) opts="--format --help" ;;
  esac
  COMPREPLY=($(compgen -W "$opts" -- "$cur"))
}
complete -F _vmbox vmbox
