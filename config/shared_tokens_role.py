# Finding 4 (extractability at the token level), shared words as the method means them: a shared filler
# word keeps its role, i.e. the same slot of the same template of the same fact type in both languages
# (shared_token_mode = 'role', data_gen.py). config/shared_tokens.py keeps today's random placement, where at
# full sharing most shared words sit in another fact type's template in the other language ("false
# friends"); report both, judge the one declared before the runs. At shared_token_frac 0 the two modes write
# the same data (tests/test_data_gen.py). Vocabulary and block size do not change: all runs train in lockstep.
include('shared_tokens.py')
out_dir = 'out/shared_tokens_role'
shared_token_mode = 'role'
sweep = {'shared_token_frac': [0.0, 0.5, 1.0], 'celeb_frac': [0.0, 0.1, 0.2, 0.3], 'seed': [0, 1]}
