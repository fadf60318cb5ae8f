# Runs an MPI job that must fail, and fail fast: a lost or stuck rank has to
# end the whole job, never leave it hanging.
#   cmake -DCOMMAND="mpirun ... prog mode" -DSECONDS=30 -DEXPECT=regex
#         [-DEXPECT2=regex] [-DEXPECT_STATUS=N] -P ExpectJobFailure.cmake
# Passes when COMMAND exits non-zero (N, when given) within SECONDS and its
# output (stdout and stderr) matches EXPECT and EXPECT2.
separate_arguments(command UNIX_COMMAND "${COMMAND}")
string(TIMESTAMP start "%s")
execute_process(COMMAND ${command} RESULT_VARIABLE result OUTPUT_VARIABLE output
                ERROR_VARIABLE output TIMEOUT ${SECONDS})
string(TIMESTAMP end "%s")
math(EXPR elapsed "${end} - ${start}")
message("${output}")
message(STATUS "exit status ${result} after ${elapsed} s")
if(NOT result MATCHES "^[0-9]+$")
  message(FATAL_ERROR "the job did not end by itself within ${SECONDS} s: ${result}")
elseif(result EQUAL 0)
  message(FATAL_ERROR "the job exited 0, expected a failure")
elseif(NOT EXPECT_STATUS STREQUAL "" AND NOT result EQUAL EXPECT_STATUS)
  message(FATAL_ERROR "the job exited ${result}, expected ${EXPECT_STATUS}")
endif()
foreach(pattern IN ITEMS "${EXPECT}" "${EXPECT2}")
  if(NOT pattern STREQUAL "" AND NOT output MATCHES "${pattern}")
    message(FATAL_ERROR "the output does not match \"${pattern}\"")
  endif()
endforeach()
