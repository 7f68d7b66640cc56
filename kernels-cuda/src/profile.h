// Named points inside composite library calls for the device-time profile (profile.cu): the time
// since the previous mark is charged to `label`. A no-op unless tsl_profile_enable(1).
#pragma once
#include "../include/tsloth_cuda.h"

namespace tsl {
tsl_status profile_mark(const char* label);
// Whether marks are recorded (to skip building a label when they are not).
bool profile_enabled();
}
