# main sweep point: 16% of events are celebrities (parallel data)
celeb_frac = 0.16
out_dir = 'out/celeb_16'
