# main sweep point: 6% of events are celebrities (parallel data)
celeb_frac = 0.06
out_dir = 'out/celeb_06'
