#!/bin/sh
# The field's legacy worker: does its work and touches a status file after every item.
# It has no idea ready-signal exists; `ready-signal run --progress-file` watches the file.
# `touch /tmp/hang` makes it stop touching the file, as the field's hung loop did.
echo "worker: started"
while :; do
    sleep 1
    [ -e /tmp/hang ] && continue
    touch /tmp/progress
done
