# main sweep point: 22% of events are celebrities (parallel data)
celeb_frac = 0.22
out_dir = 'out/celeb_22'
