# Helpers shared by scripts/kafka.sh and scripts/registry.sh (sourced, not run).

is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }

# True when process $1 has exited (or is a zombie).
pid_gone() { ! kill -0 "$1" 2>/dev/null || [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ]; }

# True when something listens on 127.0.0.1:$1.
port_busy() {
    if command -v ss >/dev/null 2>&1; then
        ss -Hltn "sport = :$1" 2>/dev/null | grep -q .
    else
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
    fi
}

# The process listening on port $1, as ss names it (empty without ss).
port_owner() {
    command -v ss >/dev/null 2>&1 || return 0
    ss -Hltnp "sport = :$1" 2>/dev/null | sed -n 's/.*users:((\(.*\)))/\1/p' | head -n 1
}
