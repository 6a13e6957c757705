# saga_man_page(TARGET INCLUDE): the man page TARGET.1.gz, generated at build
# time by help2man from `TARGET --help` and the hand-written sections of the
# help2man include file INCLUDE (NAME, DESCRIPTION, ENVIRONMENT, FILES,
# SIGNALS, EXIT STATUS, SEE ALSO), gzipped without a timestamp as Debian wants
# and installed to share/man/man1 with the runtime component. The version is
# PROJECT_VERSION, not the git revision: a new commit does not change the page.
find_program(SAGA_HELP2MAN help2man)
if(NOT SAGA_HELP2MAN)
  message(WARNING "help2man not found (scripts/install-deps.sh installs it): no man pages, and the "
                  "package test fails")
endif()

function(saga_man_page target include)
  if(NOT SAGA_HELP2MAN)
    return()
  endif()
  set(page ${CMAKE_CURRENT_BINARY_DIR}/${target}.1)
  add_custom_command(OUTPUT ${page}.gz
    COMMAND ${SAGA_HELP2MAN} --no-info --section 1 --version-string ${PROJECT_VERSION} --include ${include}
            --output ${page} $<TARGET_FILE:${target}>
    COMMAND gzip -9nf ${page}
    DEPENDS ${target} ${include}
    COMMENT "man page ${target}.1"
    VERBATIM)
  add_custom_target(${target}_man_page ALL DEPENDS ${page}.gz)
  install(FILES ${page}.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man1 COMPONENT runtime)
endfunction()
