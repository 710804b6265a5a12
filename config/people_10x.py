# Control for finding 4: ten times more events (10,000 people) does not fix OOD recall.
out_dir = 'out/people_10x'
n_people = 10000
sweep = {'celeb_frac': [0.0, 0.04, 0.08, 0.12, 0.16, 0.2, 0.24, 0.3]}
