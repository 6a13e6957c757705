# step(WHAT COMMAND [ARG...]) for the cmake -P test scripts (tests/install,
# tests/package): runs the command, prints "WHAT: ok (N s)", and sets step_out
# to what it printed on stdout; on failure stops the script with what it
# printed. The script names itself in STEP_TEST ("install test", ...).
function(step what)
  string(TIMESTAMP t0 "%s")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  string(TIMESTAMP t1 "%s")
  math(EXPR secs "${t1} - ${t0}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${STEP_TEST}: ${what} failed (${rc}) after ${secs} s:\n${out}\n${err}")
  endif()
  message(STATUS "${what}: ok (${secs} s)")
  set(step_out "${out}" PARENT_SCOPE)
endfunction()
