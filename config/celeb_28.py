# main sweep point: 28% of events are celebrities (parallel data)
celeb_frac = 0.28
out_dir = 'out/celeb_28'
