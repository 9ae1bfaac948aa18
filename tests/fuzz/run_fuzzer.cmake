# Runs one fuzzer for a bounded time on a copy of its seed corpus, kept in the build tree:
# libFuzzer adds what it finds to its corpus directory, and the committed seeds stay as
# they are. Inputs found in earlier runs are kept, so later runs start further along.
# cmake -DFUZZER=<exe> -DSEEDS=<dir> -DWORK=<dir> -DSECONDS=<n> [-DARGS=<list>] -P run_fuzzer.cmake
foreach(var FUZZER SEEDS WORK SECONDS)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run_fuzzer.cmake: ${var} is not set")
  endif()
endforeach()

file(MAKE_DIRECTORY ${WORK}/corpus ${WORK}/artifacts)
file(COPY ${SEEDS}/ DESTINATION ${WORK}/corpus)

execute_process(
  COMMAND ${FUZZER} -max_total_time=${SECONDS} -print_final_stats=1 -timeout=10
          -artifact_prefix=${WORK}/artifacts/ ${ARGS} ${WORK}/corpus
  RESULT_VARIABLE result)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "fuzzer failed (${result}); the input is in ${WORK}/artifacts/")
endif()
