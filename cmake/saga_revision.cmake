# cmake -P script, run at every build (adapters/server/CMakeLists.txt, target
# saga_revision): writes OUTPUT from TEMPLATE with SAGA_REVISION set to
# `git describe --always --dirty` of SOURCE_DIR, or "unknown" when SOURCE_DIR is
# not a git checkout of its own (a source tarball) or git is missing.
# configure_file rewrites OUTPUT only when its text changes: a build at the same
# revision compiles nothing, a new commit recompiles that one file.
#
# Inputs (-D): SOURCE_DIR, TEMPLATE, OUTPUT.
set(SAGA_REVISION unknown)
find_program(GIT_EXECUTABLE git)
if(GIT_EXECUTABLE AND EXISTS ${SOURCE_DIR}/.git)
  execute_process(COMMAND ${GIT_EXECUTABLE} -C ${SOURCE_DIR} describe --always --dirty
                  RESULT_VARIABLE rc OUTPUT_VARIABLE described ERROR_QUIET OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(rc EQUAL 0 AND described)
    set(SAGA_REVISION ${described})
  endif()
endif()
configure_file(${TEMPLATE} ${OUTPUT} @ONLY)
